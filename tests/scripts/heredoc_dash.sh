# covers: here-docs with <<- (tab stripping), quoted <<-'END', in functions and if bodies
greet() {
	cat <<-EOF
		hello $1
		bye
	EOF
}
greet there
if true; then
	cat <<-'END'
	literal $HOME
		two tabs
	END
fi
cat <<-X | sort
	b
	a
X
