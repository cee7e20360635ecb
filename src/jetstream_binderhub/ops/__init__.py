"""Operations on a running site: smoke-test it (verify), size it, check the allocation, upgrade it.

Each is a library function returning a typed result; the CLI prints it. Network clients (httpx,
openstacksdk) are imported by the modules that use them, never here, so `--help` stays light.
"""
