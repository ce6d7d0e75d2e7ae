"""An index directory seen from retrieval: building it, querying it, describing it."""
