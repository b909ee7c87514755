"""The admin dashboard (/admin): sign-in sessions, CSRF, and the pages on the JSON API."""
