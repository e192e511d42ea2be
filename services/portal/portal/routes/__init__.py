"""The portal routes, one module per area; portal.api includes them."""
