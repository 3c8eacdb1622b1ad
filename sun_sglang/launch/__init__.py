"""Start SGLang servers in SUN's roles, and whole local clusters."""
