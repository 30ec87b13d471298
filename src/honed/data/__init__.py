"""Reading and checking the user's data: BEIR folders, pair files, splits, leakage."""
