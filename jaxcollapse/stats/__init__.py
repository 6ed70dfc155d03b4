"""Statistics: exact theory of the recursion, the one theory lookup by regime, intervals and survival."""
