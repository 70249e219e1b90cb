"""The server-side hook that `cas init --bare` installs.

git servers accept a force-overwrite of any ``refs/cas/*`` ref (only
``refs/heads`` has protections), so a careless or hostile client could replace a
model.  The hook refuses, for the whole push at once (a pre-receive hook sees
every ref update together, which an ``update`` hook does not):

* moving an existing model ref to another commit;
* deleting a model ref, unless the same push moves that domain's history to a
  tree that no longer lists the model (a deletion recorded in the history);
* deleting a domain history or the state list.

``receive.denyNonFastForwards`` makes history refs fast-forward only.
"""

PRE_RECEIVE = r"""#!/bin/sh
# casstore: protect model refs and histories (installed by `cas init --bare`).
zero=0000000000000000000000000000000000000000
updates=$(cat)
fail=0
while read -r old new ref; do
    [ -n "$ref" ] || continue
    case "$ref" in
    refs/cas/models/*/*)
        [ "$old" = "$zero" ] && continue
        if [ "$new" != "$zero" ]; then
            echo "casstore: refusing to move existing model $ref" >&2
            fail=1
            continue
        fi
        rest=${ref#refs/cas/models/}
        domain=${rest%%/*}
        id=${rest#*/}
        hist=$(printf '%s\n' "$updates" | awk -v r="refs/cas/domains/$domain" '$3 == r { print $2 }')
        if [ -z "$hist" ] || [ "$hist" = "$zero" ] || git cat-file -e "$hist:models/$id" 2>/dev/null; then
            echo "casstore: refusing to delete $ref: the domain history still lists it" >&2
            fail=1
        fi
        ;;
    refs/cas/domains/*|refs/cas/states)
        if [ "$new" = "$zero" ]; then
            echo "casstore: refusing to delete $ref" >&2
            fail=1
        fi
        ;;
    esac
done <<END_OF_UPDATES
$updates
END_OF_UPDATES
exit $fail
"""
