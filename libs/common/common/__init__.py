"""What every FirstLine service shares. See DESIGN.md for the contract it implements."""
