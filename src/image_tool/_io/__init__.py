"""What touches the outside: the relay's address and key, the httpx2 clients and their pools,
downloads and saving to disk, reference images read from files."""
