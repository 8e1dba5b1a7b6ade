"""Users and what belongs to a person: sign-up and login, API tokens, the linked reward wallet (signed challenges),
prepaid credits (``credits``: grant and debit) and the audit log every state change writes to. Imports only core."""
