"""Sans-I/O protocol pieces shared by the server and the SDK: codec, errors, generated models."""
