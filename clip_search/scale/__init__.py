"""Scale-out: the indexing plan on Ray Data (decode tasks, encode actors), for an archive or a cluster."""
