"""Clients for the Microsoft services Foyer calls: Entra ID (MSAL), Graph (requests), ACS (SDKs).

One code path in every mode: only base URLs, authority, credentials and the HTTP session differ
between Microsoft itself and Foyer's emulator.
"""
