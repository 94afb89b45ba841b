"""Slurm hooks (Prolog, Epilog, TaskProlog, MailProg): small, bounded in time, always exit 0.

Each hook writes a durable spool record (``spool.py``) that ``nomade ingest hooks`` loads later;
none of them writes the store or does networked work except the MailProg hand-off."""
