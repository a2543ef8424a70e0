"""Names: which store a resource name lives in (:mod:`.resolve`) and where secret values are
kept (:mod:`.secrets`)."""
