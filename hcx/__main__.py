from hcx.cli import main

raise SystemExit(main())
