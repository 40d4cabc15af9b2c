from omnibank.cli import main

main()
