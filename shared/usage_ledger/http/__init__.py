"""HTTP edge shared by the API functions: resolver, identity, problem+json errors."""
