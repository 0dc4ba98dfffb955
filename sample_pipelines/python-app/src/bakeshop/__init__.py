"""A tiny bakery: prices cakes so the sample pipeline has something real to test."""

PRICES = {"sponge": 12.5, "cheesecake": 18.0, "croissant": 2.2}


def price(item: str, quantity: int = 1) -> float:
    """Price of `quantity` items; a dozen croissants costs eleven."""
    if quantity < 0:
        raise ValueError("quantity must be positive")
    unit = PRICES[item]
    if item == "croissant" and quantity >= 12:
        return round(unit * (quantity - quantity // 12), 2)
    return round(unit * quantity, 2)
