"""Digital twin of an SMS / Configuration Manager site server (see CONTRACT.md for the layers and their API)."""
