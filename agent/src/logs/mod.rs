//! App logs: per-app out/err files, timestamps, size-based rotation, tail and follow.
