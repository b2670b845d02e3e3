"""intake.imap."""
