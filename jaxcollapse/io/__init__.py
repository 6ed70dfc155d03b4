"""Files: run directories, figures, text corpora."""
