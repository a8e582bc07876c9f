// A parser worker that fails as it loads, as one whose bundle lost a module would.
throw new Error("this parser worker cannot start")
