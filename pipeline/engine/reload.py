"""Policy reload (stub while building)."""


class PolicyReload:
    def __init__(self, config, control, metrics):
        pass

    def check_soon(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
