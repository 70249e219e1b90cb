"""What the Store's methods do, one module per operation (docs/architecture.md).

``store.py`` is the facade: it checks arguments, takes locks and calls these.  They
sit under it and above everything it uses, because they combine the frameworks
(saving, loading), the load cache, the remote code and the model layer: ``commit``
(the commit's checks, saving through the frameworks, then model/commit.py), ``loading``
(load, download, reading and streaming files, the model card), ``info`` (the dict of
``get_model_info``), ``location`` (where a store is: resolve, init, check; its
settings), ``remotes`` (push, pull, a remote's URL and refs), ``synclog`` (what push
and pull report to the log and as warnings), ``signing`` (the signature policy before
a read, model signatures), ``restoring`` (a restore with its states) and ``upkeep``
(gc and fsck around ops/).
"""
