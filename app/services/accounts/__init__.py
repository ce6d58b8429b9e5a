"""Staff accounts: users, sign-in, Microsoft SSO, sign-in flows in progress and the setup code."""
