// Placeholder: the HTTP API is being written (issue 7).
