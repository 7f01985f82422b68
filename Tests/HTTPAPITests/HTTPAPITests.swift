// Placeholder (issue 7).
