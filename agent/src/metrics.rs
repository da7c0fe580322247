//! CPU and memory of an instance and its process tree, read from /proc.
