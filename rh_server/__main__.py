from rh_server.main import main

main()
