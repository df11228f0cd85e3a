"""Example DAGs of the mlops-tasks provider (:mod:`.mlops_pipeline`)."""
