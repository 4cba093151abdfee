"""Hand-written .proto sources of our extension service and the script that builds them."""
