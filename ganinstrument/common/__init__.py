"""Small shared types and utilities every room may import: errors, events, frames, clocks,
queues, text, files, user folders, the heap trimmer and OpenMP set-up. They import no room."""
