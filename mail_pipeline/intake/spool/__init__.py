"""intake.spool."""
