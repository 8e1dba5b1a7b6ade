"""The adversarial economics simulation: farming strategies against the real services (README, "Economics")."""
