from rescom.cli import main

main()
