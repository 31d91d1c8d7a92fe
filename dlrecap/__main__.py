from dlrecap.cli import main

# Guarded: a process spawned by this one (a sweep's drawing process) imports this module too.
if __name__ == "__main__":
    main()
