from mvd_edge.cli import main

main()
