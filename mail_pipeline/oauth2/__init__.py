"""OAuth2 for IMAP mailboxes (no Dagster imports).

- :mod:`.grants`: store and read a mailbox's grant, sealed (above ``store.oauth2_grants``);
- :mod:`.tokens`: the access token at login: cached while valid, else refreshed once per
  account at a time across processes, rotated refresh tokens stored;
- :mod:`.token_endpoint`: one refresh request (authlib) and the meaning of its failures;
- :mod:`.providers`: provider presets (Gmail, Microsoft 365);
- :mod:`.authorization`, :mod:`.device_flow`, :mod:`.loopback_flow`: getting the first refresh
  token (``mail-pipeline imap authorize``).

authlib and requests are imported when a token request is made, never by importing this
package.
"""
