"""seq2seq.tasks."""
