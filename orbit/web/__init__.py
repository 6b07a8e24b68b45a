"""HTTP plumbing shared by the console and the API: middleware, authentication, rate limits."""
