// Placeholder: the image store is being written (issue 7).
