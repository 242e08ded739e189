"""The images wing's command-line commands and interactive panels (called by the front door; they never import it)."""
