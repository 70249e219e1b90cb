"""Push and pull between stores over git transports."""
