"""What a run says: which configuration stands for a family, statistics over seeds, the end-of-run summary."""
