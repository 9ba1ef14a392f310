"""Customer order portal: SMS links to a live order page for shoppers, a console for clerks."""
