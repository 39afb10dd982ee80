"""The search engine: the loop (:class:`Search`), the run store, progressive hurdles."""
