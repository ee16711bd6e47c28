module github.com/usertrace/usertrace

go 1.26.8
