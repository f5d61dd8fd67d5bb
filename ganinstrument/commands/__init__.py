"""The commands (cli, perform, render, devices, check, learn) and what only a command does:
the supervisor that restarts `perform`, and the autosave it resumes from. Nothing below imports them."""
