"""What the Store's methods do, one module per operation (docs/architecture.md).

``store.py`` is the facade: it checks arguments, takes locks and calls these.  They
sit under it and above everything it uses, because they combine the frameworks
(saving, loading), the load cache and the model layer, or (``location``) the remote
code: ``commit`` (saving through the frameworks, then model/commit.py), ``loading``
(load, download, reading and streaming files), ``info`` (the dict of
``get_model_info``), ``location`` (where a store is: resolve, init, check) and
``synclog`` (what push and pull report to the log and as warnings).
"""
