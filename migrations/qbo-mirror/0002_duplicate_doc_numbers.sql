-- The hygiene tray looks up only the doc numbers held by more than one bill.
CREATE INDEX bill_doc_numbers_duplicates ON bill_doc_numbers (realm_id) WHERE bills > 1;
