"""Request state: key-value pairs shared by every function call of one request.

``RequestContext.get().state`` is scoped to the current request: one call sets a value,
any later call of the same request (in any container) reads it. Each request starts with
empty state, so two requests never see each other's values::

    curl -F code=@examples/state.py http://127.0.0.1:8900/applications
    curl -X POST 'http://127.0.0.1:8900/applications/shopping_cart?wait=30' \\
         -F 'customer="ada"' -F 'items=["tea", "scones", "tea"]'
    # {"customer":"ada","message":"ada ordered 3 items: scones x1, tea x2",
    #  "unique_items":2,"same_request":true,"previous_customer":null}
"""

from collections import Counter

from cove import RequestContext, application, function


@function(description="Stores the cart in request state.")
def remember_cart(customer: str, items: list[str]) -> str:
    state = RequestContext.get().state
    state.set("customer", customer)
    state.set("cart", dict(Counter(items)))  # any picklable value
    return RequestContext.get().request_id


@function(description="Writes the order message from what an earlier call stored.")
def compose_message() -> dict[str, object]:
    ctx = RequestContext.get()
    customer = ctx.state.get("customer")
    cart: dict[str, int] = ctx.state.get("cart", {}) or {}
    count = sum(cart.values())
    lines = ", ".join(f"{item} x{n}" for item, n in sorted(cart.items()))
    return {
        "message": f"{customer} ordered {count} items: {lines}",
        "unique_items": len(cart),
        "request_id": ctx.request_id,
    }


@application()
@function(description="Shares a shopping cart between two functions through request state.")
def shopping_cart(customer: str, items: list[str]) -> dict[str, object]:
    state = RequestContext.get().state
    previous = state.get("customer")  # always None: every request starts empty
    writer_request = remember_cart(customer, items)
    summary = compose_message()
    return {
        "customer": state.get("customer"),  # the entry point sees it too
        "message": summary["message"],
        "unique_items": summary["unique_items"],
        "same_request": writer_request == summary["request_id"] == RequestContext.get().request_id,
        "previous_customer": previous,
    }


if __name__ == "__main__":
    from cove import run_local_application

    print(run_local_application(shopping_cart, "ada", ["tea", "scones", "tea"]).output())
