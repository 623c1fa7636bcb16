module agp.local/pause

go 1.22
