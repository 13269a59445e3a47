// Compiles the precompiled LibTorch header that every mixlab target reuses.
