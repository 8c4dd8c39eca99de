"""The cluster's shadow comparator: joins the live and the shadow InferenceService's payload events."""
